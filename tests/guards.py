"""A guard for tests that name the machine's own special files (/dev/null, /dev/stdout): while it is on,
renaming or replacing anything into the /dev file system raises, so that a regression that treated a device
or a stream as an ordinary output file fails its test instead of replacing it (the tests may run as root).
The target's folder is compared with /dev by device number, so that no spelling (``//dev/./stdout``,
``/dev/../dev/null``, a link to /dev) gets past it."""

import contextlib
import os


def lands_in_dev(target) -> bool:
    """Whether a new name ``target`` would be made on the file system of /dev."""
    folder = os.path.dirname(os.path.abspath(os.fsdecode(os.fspath(target)))) or "/"
    try:
        return os.stat(folder).st_dev == os.stat("/dev").st_dev
    except OSError:                 # (no such folder: the move fails by itself)
        return False


@contextlib.contextmanager
def devices_guarded():
    real_replace, real_rename = os.replace, os.rename

    def guarded(real):
        def move(source, target, *args, **kwargs):
            if lands_in_dev(target):
                raise AssertionError(f"tried to replace {target} in /dev")
            return real(source, target, *args, **kwargs)
        return move

    os.replace, os.rename = guarded(real_replace), guarded(real_rename)
    try:
        yield
    finally:
        os.replace, os.rename = real_replace, real_rename
