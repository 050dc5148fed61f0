"""The `streamstyle` command: a thin layer over the library API. Commands import what they run only when they
run, so `--help` answers at once."""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

from streamstyle import __version__
from streamstyle.cli import jobs, offline, stills, web
from streamstyle.core.errors import StreamstyleError


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what `timeout`, `kill`, service managers and a closed terminal send), unwinding the
    command as Ctrl-C does, so every unfinished output is discarded."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated(signum)


class ErrorReportingGroup(click.Group):
    """Reports a StreamstyleError as one line on stderr and exit status 2, with no traceback; a signal that stops
    the command (SIGINT, SIGTERM, SIGHUP) as one line and the shell's status for it, 128 + its number."""

    def invoke(self, ctx: click.Context):
        for stopping in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(stopping, _terminate)
        try:
            return super().invoke(ctx)
        except click.BadParameter as error:  # an option's value out of its range: a bad input like any other
            if isinstance(error, click.MissingParameter):
                raise  # click's usage message shows what to give
            click.echo(f"streamstyle: error: {error.format_message()}", err=True)
            ctx.exit(2)
        except StreamstyleError as error:
            click.echo(f"streamstyle: error: {error}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt as interrupt:
            signum = interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT
            click.echo("streamstyle: interrupted" if signum == signal.SIGINT else
                       f"streamstyle: stopped by {signal.Signals(signum).name}", err=True)  # fmt: skip
            if any(thread.daemon and thread.is_alive() for thread in threading.enumerate()):
                # A step did not stop in time (a second Ctrl-C cut the closing short, or a read blocks on a pipe):
                # it is still inside native code (the model, the codecs), and tearing the interpreter down under
                # it aborts the process.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(128 + signum)
            ctx.exit(128 + signum)


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamstyle")
def cli() -> None:
    """Real-time neural style transfer for images, video files, webcams and streams."""


for command in (stills.image, jobs.file, jobs.batch, jobs.webcam, jobs.stream, jobs.run, offline.bench, offline.train,
                offline.eval_temporal, offline.export, web.serve, web.export_web, stills.styles,
                stills.models):  # fmt: skip
    cli.add_command(command)


def main() -> None:
    cli(prog_name="streamstyle")
