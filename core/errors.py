"""The errors core raises on purpose: each carries a message meant for the person at the keyboard."""


class DotmapError(Exception):
    """A problem with the user's data, settings or folders, explained in words."""


class NoImagesError(DotmapError):
    """The data folder holds too few readable images for the request."""


class NoStructureError(DotmapError):
    """The images are all identical (or too few distinct), so there is nothing to cluster."""


class UmapUnavailableError(DotmapError):
    """UMAP could not be imported or run; the message says what to do."""


class PathError(DotmapError):
    """A path that cannot be looked at or used: a folder on its way this user may not enter, a name too
    long for a file system, a loop of links, a read-only file system; the message says which and what to do."""


class DiskFullError(DotmapError):
    """A disk (or its table of files) is full; the message says which folder, how much was needed and what to do."""


class SettingError(DotmapError, ValueError):
    """A setting, flag or environment variable out of its range; the message gives the range."""
