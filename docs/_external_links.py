"""Report what linkchecker found in the built site: the broken links and anchors, and every external link, which
must be a well-formed https URL.

linkchecker follows the site's own links and anchors; the external ones it only parses, since the machines that
build the docs reach package registries only. Usage: ``python docs/_external_links.py LINKCHECKER_CSV``.
"""

from __future__ import annotations

import csv
import sys
from urllib.parse import urlsplit


def main(path: str) -> int:
    """Print the problems and the external URLs of a linkchecker CSV report; return 1 if there is a problem.

    :param path: the report of ``linkchecker -v -o csv``
    """
    with open(path, encoding="utf-8") as report:
        rows = list(csv.DictReader((line for line in report if not line.startswith("#")), delimiter=";"))
    problems = [row for row in rows if row["valid"] != "True" or row["warningstring"]]
    for row in problems:
        print(f"BROKEN {row['urlname']} in {row['parentname']}: {row['result']} {row['warningstring']}".rstrip())
    urls = sorted({row["url"] for row in rows if row["url"].startswith(("http:", "https:"))})
    bad = [url for url in urls if urlsplit(url).scheme != "https" or not urlsplit(url).hostname]
    for url in urls:
        print(f"  {'NOT https: ' if url in bad else ''}{url}")
    print(f"{len(urls)} external links, not fetched (offline); {len(bad)} not a well-formed https URL")
    return 1 if bad or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
