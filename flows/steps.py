"""A deployment pull step that does not depend on the shell's $PWD.

prefect.yaml's entrypoints (`flows/transfer.py:transfer_manifest`) are relative to the
folder that holds `flows/`: this checkout for an editable install, the installed
`s3flow` package otherwise (flows/ installs as s3flow/flows/). The worker's flow process
runs this step first, so a deployment made from a script, a subprocess or another
working directory runs the same code (`{{ $PWD }}` was resolved from the deploying
shell's PWD variable, which a script may not have updated).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_directory() -> dict[str, str]:
    """Change into the folder that holds flows/, and say which it is."""
    import s3flow.flows

    directory = str(Path(s3flow.flows.__file__).resolve().parent.parent)
    os.chdir(directory)
    return {"directory": directory}
