# The child side of the code-benchmark sandbox (hildanext.eval.codeeval.run_program): lowers the resource limits,
# replaces socket creation with a raising stub when asked (the fallback where `unshare -n` cannot run), then runs
# the program, the hidden tests and check(entry_point) and writes {"status", "detail"} to the result file.
# Usage: python -I sandbox_runner.py PROGRAM TESTS ENTRY_POINT RESULT MEMORY_MB CPU_S BLOCK_SOCKETS(0|1)
import json, os, resource, sys, traceback
def lower_limit(kind: int, soft: int, hard: int) -> None:
    current = resource.getrlimit(kind)[1]
    hard = hard if current == resource.RLIM_INFINITY else min(hard, current)
    resource.setrlimit(kind, (min(soft, hard), hard))

def set_limits(memory_mb: int, cpu_s: int) -> None:
    mb = 1 << 20
    lower_limit(resource.RLIMIT_AS, memory_mb * mb, memory_mb * mb)
    lower_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    lower_limit(resource.RLIMIT_FSIZE, 16 * mb, 16 * mb)
    lower_limit(resource.RLIMIT_CORE, 0, 0)
    lower_limit(resource.RLIMIT_NPROC, 1, 1)

def block_sockets() -> None:
    import _socket, socket
    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            raise OSError(101, "network disabled in the sandbox")
    def refuse(*args, **kwargs):
        raise OSError(101, "network disabled in the sandbox")
    socket.socket = socket.SocketType = _socket.socket = _socket.SocketType = NoSocket
    for name in ("socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo", "gethostbyname"):
        setattr(socket, name, refuse)

def describe(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in ("program.py", "tests.py")]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}: {(frames[-1].line or '')[:80]}" if frames else ""
    return (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)[:160] + where

def attempt(action, status_on_error: str):
    try:
        action()
    except MemoryError:
        return "memory", "MemoryError"
    except BaseException as error:
        return status_on_error, describe(error)
    return None

def run(program: str, tests: str, entry_point: str) -> tuple[str, str]:
    scope = {"__name__": "__sandbox__"}
    steps = ((lambda: exec(compile(open(program).read(), program, "exec"), scope), "error"),
             (lambda: exec(compile(open(tests).read(), tests, "exec"), scope), "error"),
             (lambda: scope[entry_point], "error"),
             (lambda: scope["check"](scope[entry_point]), "failed"))
    for action, status_on_error in steps:
        outcome = attempt(action, status_on_error)
        if outcome is not None:
            return outcome
    return "passed", ""

def main(program, tests, entry_point, result, memory_mb, cpu_s, block) -> None:
    set_limits(int(memory_mb), int(cpu_s))
    if block == "1":
        block_sockets()
    status, detail = run(program, tests, entry_point)
    with open(result, "w") as out:
        json.dump({"status": status, "detail": detail}, out)
    os._exit(0)

if __name__ == "__main__":
    main(*sys.argv[1:])
