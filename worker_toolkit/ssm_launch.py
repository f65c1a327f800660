"""Entry point of every ssm_rules job: copied to the root of the code bundle as ssm_launch.py.

sagemaker-training-toolkit runs it as the script-mode program (``sagemaker_program``); a
processing job's bootstrap execs it after unpacking the bundle. Standard library only.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # The bundle root holds worker_toolkit/; make it importable whatever the cwd is.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from worker_toolkit.launcher import main

    raise SystemExit(main())
