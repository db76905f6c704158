"""Error text for one-line logs and command output."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message: driver errors can span several lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
