"""The command-line tools' error: a message for a person, the next step to take, the exit code."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_TIMEOUT = 4
# Following gave up: the control plane did not answer for --wait seconds (the job goes on).
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """Anything the user can fix; `hint` says how, so no error leaves them guessing."""

    def __init__(self, message: str, *, hint: str = "", exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  → {self.hint}"
        return text
