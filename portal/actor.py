"""Who made a change, from where and through what: one value, built once where the change enters.

A portal page's decorator builds it from the request (`request.actor`: the user, the client's address behind
trusted proxies, the browser), the command base from the command (`self.actor`), a background task names
itself, and the token endpoint names the API client. Services take it as `actor` and never see the request;
the audit trail (`environments.audit.record_audit`) writes it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import HttpRequest

from .client_address import client_ip

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

# What kind of actor it is: the audit trail's `actor_type`.
USER, CLIENT, SYSTEM = "user", "client", "system"
# Through what the change came.
PORTAL, API, COMMAND, TASK = "portal", "api", "command", "task"


@dataclass(frozen=True)
class Actor:
    """Who (`kind`, `label`, `user`), from where (`ip`, `user_agent`) and through what (`channel`).

    `label` is what the audit trail shows as the actor: a username, an API client's "name (client_id)",
    "system", or the name of a command or task. `ip` and `user_agent` are known only for what came
    through a request (a page, or an API client's address at the token endpoint).
    """

    kind: str
    label: str
    channel: str
    user: AbstractBaseUser | None = None
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        """The person behind a portal page's request (the decorators set it as `request.actor`)."""
        user = request.user if request.user.is_authenticated else None
        return cls(
            kind=USER if user is not None else SYSTEM,
            label=user.get_username() if user is not None else "system",
            channel=PORTAL,
            user=user,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )

    @classmethod
    def for_user(cls, user: AbstractBaseUser, *, channel: str = PORTAL) -> Actor:
        """A user acting with no request at hand (their address and browser unknown)."""
        return cls(kind=USER, label=user.get_username(), channel=channel, user=user)

    @classmethod
    def requested_by(cls, user: AbstractBaseUser | None, *, label: str | None = None, ip: str | None = None) -> Actor:
        """A worker carrying out what someone asked for earlier (a send by hand), in their name: the user who
        asked (or none: "system"), the label they were recorded under, and the address they asked from."""
        if label is None:
            label = user.get_username() if user is not None else "system"
        return cls(kind=USER if user is not None else SYSTEM, label=label, channel=TASK, user=user, ip=ip)

    @classmethod
    def for_client(cls, label: str, *, ip: str | None) -> Actor:
        """An API client at the token endpoint, named as the trail shows it ("name (client_id)")."""
        return cls(kind=CLIENT, label=label, channel=API, ip=ip)

    @classmethod
    def for_command(cls, name: str, *, label: str | None = None) -> Actor:
        """A management command: recorded as "manage.py <name>" unless given another `label`."""
        return cls(kind=SYSTEM, label=label or f"manage.py {name}", channel=COMMAND)

    @classmethod
    def for_task(cls, name: str = "system") -> Actor:
        """Background work (a beat task, the delivery engine), recorded under `name`."""
        return cls(kind=SYSTEM, label=name, channel=TASK)


# Who a service records when no one in particular acted: the engine disabling a webhook, a script, a test.
SYSTEM_ACTOR = Actor.for_task()
