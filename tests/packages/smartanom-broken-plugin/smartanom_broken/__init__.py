import smartanom_missing_driver  # noqa: F401  (not installed anywhere: the import fails)

from smartanom import Platform, hookimpl


@hookimpl
def register_platforms():
    return [Platform("broken_thing", run=None)]
