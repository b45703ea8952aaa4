"""``python -m workbench.testmodel``: run the test model server in the foreground.

Prints the two lines to export, ``export OPENAI_BASE_URL=http://127.0.0.1:PORT/v1`` then
``export ANTHROPIC_BASE_URL=http://127.0.0.1:PORT``, as the first lines of stdout (a hint for
people goes to stderr), then serves until SIGTERM or SIGINT. The root URL alone is no base URL:
the OpenAI SDK needs ``/v1`` on it. Owns only this command-line wiring; the server itself is
:class:`workbench.testmodel.ModelServer`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from workbench.exceptions import TestServerError
from workbench.testmodel._server import ModelServer


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m workbench.testmodel") -> int:
    """Run the server until SIGTERM or SIGINT; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run workbench's OpenAI + Anthropic test model server on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each response (default: 0)"
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between SSE events (default: 0)"
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # Installed before the server starts so a signal arriving early still stops it cleanly.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = ModelServer(
            port=args.port, latency_s=args.latency, chunk_delay_s=args.chunk_delay
        ).start()
    except TestServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"export OPENAI_BASE_URL={server.openai_base_url}")
        print(f"export ANTHROPIC_BASE_URL={server.anthropic_base_url}", flush=True)
        print(
            "# workbench's test model server: export the lines above in another shell (any API "
            "key works, e.g. OPENAI_API_KEY=sk-test); Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        # A bounded wait returns to the interpreter regularly, so the signal handler gets to run.
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
