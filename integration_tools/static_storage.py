"""Static files in production: hashed, compressed names when collected, plain names when not."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ManifestOrPlainStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's manifest storage that still renders pages when `collectstatic` never ran.

    Without a manifest Django's storage raises on the first `{% static %}`, so
    every page would answer 500. With no manifest loaded the unhashed name is
    used instead, and WhiteNoise (WHITENOISE_USE_FINDERS) serves the file from
    the app directories, with short cache lifetimes.
    """

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:
            return name
        return super().stored_name(name)
