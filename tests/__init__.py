"""Dotmap's tests: a package, so that `tests.apptest` is this one (hershey-fonts installs a top-level `tests`)."""
