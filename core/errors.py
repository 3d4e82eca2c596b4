"""The errors core raises on purpose: each carries a message meant for the person at the keyboard."""


class DotmapError(Exception):
    """A problem with the user's data, settings or folders, explained in words."""


class NoImagesError(DotmapError):
    """The data folder holds too few readable images for the request."""


class NoStructureError(DotmapError):
    """The images are all identical (or too few distinct), so there is nothing to cluster."""


class UmapUnavailableError(DotmapError):
    """UMAP could not be imported or run; the message says what to do."""
