"""Two installed packages declaring one entry-point name: the name is the plugin's
identity (logs, SMARTANOM_PLUGINS, its /plugins/<name>/ prefix), so one of them
cannot be loaded, and that must be said rather than silently skipped."""

from smartanom.testing import make_plugin_host


def install(site, package: str, module: str, entry_point: str) -> None:
    """A minimal installed distribution: its module and a .dist-info with one entry point."""
    (site / f"{module}.py").write_text(
        "from smartanom import hookimpl\n\n\n@hookimpl\ndef register_routes():\n    return []\n"
    )
    info = site / f"{package.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[smartanom]\n{entry_point} = {module}\n")


def test_a_second_package_with_the_same_entry_point_name_is_reported(tmp_path, monkeypatch, caplog):
    install(tmp_path, "smartanom-orp-b", "orp_b", "orp")
    install(tmp_path, "smartanom-orp-a", "orp_a", "orp")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SMARTANOM_PLUGINS", "orp")
    host = make_plugin_host()
    record = host.records["orp"]
    # The first by package name is loaded, whatever the order the folder lists them in.
    assert (record.package, record.loaded) == ("smartanom-orp-a", True)
    assert host.pm.get_plugin("orp").__name__ == "orp_a"
    message = (
        "entry point name 'orp' is also declared by smartanom-orp-b 1.0 (orp_b), "
        "which is not loaded: uninstall one of the two packages"
    )
    assert record.errors == [message]
    assert f"Plugin orp (smartanom-orp-a 1.0) {message}" in caplog.text

