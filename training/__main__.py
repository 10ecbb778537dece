"""`python -m training ...`: train, evaluate and export VAEs (see training/README.md)."""

import logging
import os
import sys

from training.cli import app

if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A torchrun worker whose group is already destroyed can still abort in libtorch's exit-time
    # teardown ("terminate called without an active exception", no Python frame): its work is
    # written by then, so it leaves without that teardown, with the exit code the command chose.
    try:
        app()
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else int(done.code is not None))
else:
    app()
