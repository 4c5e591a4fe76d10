"""The one exception family a user can cause; the CLI prints these without a traceback."""


class FoleyError(Exception):
    """Base class: a problem with the user's input or environment, with a message saying what to do."""


class MediaError(FoleyError):
    """A media file cannot be read, has no usable stream, or cannot be written."""


class TrackError(FoleyError):
    """A track file, mask set or tracker request is invalid."""


class AudioError(FoleyError):
    """Audio samples are unusable (NaN/inf, wrong shape, empty)."""


class Terminated(BaseException):
    """SIGTERM (what `timeout`, containers and Slurm send): unwinds like Ctrl-C, so temporaries are removed
    (raised by foley.cli's handler; a BaseException, so `except Exception` never swallows it)."""
