"""The README's example plug-in (its "Clusters on other machines"), word for word: the tests
install it through its entry point (the dist-info beside it), with this folder on PYTHONPATH."""

from pathlib import Path

from castray_nb.core.sources import Candidate


def team_clusters(ctx):
    """The clusters in ~/.config/team/ray-clusters.txt, one per line: host, host:gcs_port or
    http://host:port, then "token" when your Ray token is meant for that host."""
    path = Path.home() / ".config" / "team" / "ray-clusters.txt"
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        address, _, flag = line.split("#", 1)[0].strip().partition(" ")
        meant = flag.strip() == "token"
        if address.startswith(("http://", "https://")):
            yield Candidate(source="team", dashboard_url=address.rstrip("/"), token_meant=meant)
        elif ":" in address:
            yield Candidate(source="team", gcs_address=address, token_meant=meant)
        elif address:
            yield Candidate(source="team", host=address, token_meant=meant)  # Ray's default ports
