"""MkDocs hook: the docstrings name objects with Sphinx roles (:class:`RunConfig`, :func:`evaluate`), which
mkdocstrings renders as Markdown, leaving the role's name before the code span. The code span alone says it."""

import re

ROLE = re.compile(r":(?:attr|class|data|exc|func|meth|mod|obj):(?=<code>)")


def on_page_content(html, page, config, files):
    return ROLE.sub("", html)
