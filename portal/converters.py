"""URL converters for ids: a number too long for a 64-bit column is a 404, not a database error."""


def row_id(text: str) -> int | None:
    """A row id typed as text (a query parameter, a command argument), or None: the `<id:…>` rule."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


class DatabaseId:
    """`<id:name>`: a row id of up to 18 digits (every such number fits a bigint)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class SmallNumber(DatabaseId):
    """`<number:name>`: a counter of up to 9 digits (every such number fits an integer column)."""

    regex = "[0-9]{1,9}"
