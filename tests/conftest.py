# The hub's fixtures (hub_factory, ws_client) come from core/testing.py, which
# the smartanom package registers as a pytest plugin (entry point `pytest11`),
# exactly as plugin authors get them. Listing it here too would load it twice.
