pytest_plugins = ["core.testing", "browser_fixtures"]
