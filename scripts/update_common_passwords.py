#!/usr/bin/env python3
"""Regenerate shared/data/common-passwords.txt from Django's CommonPasswordValidator list.

Source: the `django` package on PyPI, file django/contrib/auth/common-passwords.txt.gz — the
20,000 most common passwords compiled by Royce Williams from breach corpora
(https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce), shipped by Django
under the BSD 3-Clause licence. We keep it lower-cased, deduplicated and sorted.

    python scripts/update_common_passwords.py            # downloads the pinned Django wheel
"""
import glob
import gzip
import subprocess
import sys
import tempfile
import zipfile

DJANGO = "django==5.2.19"
OUT = "shared/data/common-passwords.txt"

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, DJANGO], check=True)
    wheel = glob.glob(f"{tmp}/*.whl")[0]
    raw = zipfile.ZipFile(wheel).read("django/contrib/auth/common-passwords.txt.gz")
words = sorted({line.strip().lower() for line in gzip.decompress(raw).decode().splitlines() if line.strip()})
with open(OUT, "w", encoding="utf-8") as f:
    f.write("\n".join(words) + "\n")
print(f"{OUT}: {len(words)} passwords from {DJANGO}")
