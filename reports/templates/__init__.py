"""jinja2 templates of the reports (a package so that setuptools ships the *.j2 files)."""
