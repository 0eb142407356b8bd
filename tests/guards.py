"""A guard for tests that name the machine's own special files (/dev/null, /dev/stdout): while it is on,
renaming or replacing anything onto a path under /dev raises, so that a regression that treated a device as an
ordinary output file fails its test instead of replacing the device (the tests may run as root)."""

import contextlib
import os


@contextlib.contextmanager
def devices_guarded():
    real_replace, real_rename = os.replace, os.rename

    def guarded(real):
        def move(source, target, *args, **kwargs):
            if os.path.abspath(os.fsdecode(os.fspath(target))).startswith("/dev/"):
                raise AssertionError(f"tried to replace {target}")
            return real(source, target, *args, **kwargs)
        return move

    os.replace, os.rename = guarded(real_replace), guarded(real_rename)
    try:
        yield
    finally:
        os.replace, os.rename = real_replace, real_rename
