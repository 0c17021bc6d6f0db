// Passkeys (WebAuthn) for forms marked data-passkey="create" (add one) or "get" (sign in with one): the button
// asks the portal for options, lets the browser make or use a passkey, and submits the form with its answer,
// which the portal checks (people/passkeys.py). Where the browser has no WebAuthn, or the page is not at the
// portal's own address, the button stays hidden and the form's note says why.
(() => {
  const toBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="));
    return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  };

  const toText = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) {
      binary += String.fromCharCode(byte);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const withIds = (credentials) => (credentials || []).map((credential) => ({ ...credential, id: toBytes(credential.id) }));

  const publicKey = (kind, options) =>
    kind === "create"
      ? {
          ...options,
          challenge: toBytes(options.challenge),
          user: { ...options.user, id: toBytes(options.user.id) },
          excludeCredentials: withIds(options.excludeCredentials),
        }
      : { ...options, challenge: toBytes(options.challenge), allowCredentials: withIds(options.allowCredentials) };

  // The answer as py_webauthn reads it (the WebAuthn JSON form, binary fields in base64url).
  const answer = (credential) => {
    const reply = credential.response;
    const response = { clientDataJSON: toText(reply.clientDataJSON) };
    if (reply.attestationObject) {
      response.attestationObject = toText(reply.attestationObject);
      response.transports = reply.getTransports ? reply.getTransports() : [];
    } else {
      response.authenticatorData = toText(reply.authenticatorData);
      response.signature = toText(reply.signature);
      if (reply.userHandle) {
        response.userHandle = toText(reply.userHandle);
      }
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
    });
  };

  class Refusal extends Error {}

  const optionsFor = async (form) => {
    const reply = await fetch(form.dataset.optionsUrl, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const body = await reply.json().catch(() => null);
    if (!reply.ok || !body || body.error) {
      throw new Refusal(
        body?.error?.message || `The portal did not answer as expected (${reply.status}): reload the page and try again.`,
      );
    }
    return body;
  };

  const explain = (error, kind, origin) => {
    if (error instanceof Refusal) {
      return error.message;
    }
    const nothing = kind === "create" ? "Nothing was added" : "You are not signed in yet";
    switch (error.name) {
      case "NotAllowedError":
        return `The passkey prompt was closed or timed out. ${nothing}: press the button to try again.`;
      case "InvalidStateError":
        return "This authenticator holds one of your passkeys for the portal already: use another, or keep that one.";
      case "SecurityError":
        return `The browser refused passkeys for this page: open the portal at ${origin}.`;
      case "AbortError":
        return `The passkey prompt was cancelled. ${nothing}.`;
      default:
        return `The browser could not use a passkey (${error.name}: ${error.message}). ${nothing}.`;
    }
  };

  const enable = (form) => {
    const kind = form.dataset.passkey;
    const button = form.querySelector("[data-passkey-button]");
    const status = form.querySelector("[data-passkey-status]");
    const note = form.querySelector("[data-passkey-unsupported]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      return; // the note says this browser cannot
    }
    if (window.location.origin !== form.dataset.origin) {
      note.textContent = `Passkeys work at the portal's own address, ${form.dataset.origin}: open it there to use them.`;
      return;
    }
    note.hidden = true;
    button.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      status.hidden = true;
      try {
        const options = await optionsFor(form);
        const ceremony = kind === "create" ? navigator.credentials.create : navigator.credentials.get;
        const credential = await ceremony.call(navigator.credentials, { publicKey: publicKey(kind, options) });
        form.elements.credential.value = answer(credential);
        form.submit();
      } catch (error) {
        status.textContent = explain(error, kind, form.dataset.origin);
        status.hidden = false;
        button.disabled = false;
        button.focus();
      }
    });
  };

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form[data-passkey]")) {
      enable(form);
    }
  });
})();
