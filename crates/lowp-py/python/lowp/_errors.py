"""lowp's exception classes. Every error lowp raises is a :class:`LowpError`; each subclass is also the
built-in exception Python users would expect (``ValueError``, ``TypeError`` or ``ArithmeticError``)."""


class LowpError(Exception):
    """Base class of every error lowp raises."""


class FormatError(LowpError, ValueError):
    """Unknown format name or parameters that describe no format (E = 0, a bias the width cannot hold...)."""


class OptionError(LowpError, ValueError):
    """Unknown rounding mode or an option out of range (flip probability, random bits, bit width...)."""


class DtypeError(LowpError, TypeError):
    """An array of a data type lowp cannot take here, or a format the data type cannot hold."""


class ShapeError(LowpError, ValueError):
    """Arrays whose shapes or lengths do not match, or a packed buffer too short."""


class RepresentationError(LowpError, ValueError):
    """A value with no code in the format (NaN in a format without NaN), or a code the format does not have."""


class FileFormatError(LowpError, ValueError):
    """A file that is not a safetensors file of quantized tensors lowp can read (truncated, malformed, or
    written by another program). Failures of the system (a missing file, no permission) are ``OSError``."""


class NumericalError(LowpError, ArithmeticError):
    """A computation that cannot go on in the emulated format: a matrix singular in it (a zero pivot), not
    positive definite in it, or a factorization or solve that overflowed its range."""


__all__ = [
    "LowpError",
    "FormatError",
    "OptionError",
    "DtypeError",
    "ShapeError",
    "RepresentationError",
    "FileFormatError",
    "NumericalError",
]

for _cls in (LowpError, FormatError, OptionError, DtypeError, ShapeError, RepresentationError, FileFormatError,
             NumericalError):
    _cls.__module__ = "lowp"  # shown in tracebacks as lowp.FormatError, where users find it
