"""The base of every portal form: what people type is never cut short without a word."""

from django import forms


class PortalForm(forms.Form):
    """A form whose text inputs carry no `maxlength`: a browser would silently cut a longer paste
    (a 2,100-character URL saved as its first 2,000). The server refuses it with a message instead."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.pop("maxlength", None)
