"""Checks of what an unprivileged user meets (a file it may not read or write), run as one even under
root, as CI runs: chmod does not stop root, so the work runs in a forked child dropped to nobody."""

from __future__ import annotations

import json
import os


def as_nobody(work):
    """work() as the kernel answers an unprivileged user: as root, in a forked child that has
    dropped to uid/gid 65534 (nobody), since chmod 000 does not stop root. Returns its JSON result.

    The child may be unable to import what the parent has not (a Python installed in root's home, as
    pyenv does, is not readable by nobody): import what work() needs before calling this."""
    if os.geteuid() != 0:
        return json.loads(json.dumps(work()))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        result = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return json.loads(result)
