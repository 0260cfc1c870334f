"""The outlet simulator: a local HTTP server standing in for news outlets' sites and feeds."""

from simulator.corpus import (
    DEMO_ROOT,
    CorpusError,
    DemoArticle,
    DemoCorpus,
    DemoOutlet,
    load_corpus,
)
from simulator.server import OutletSimulator, SimulatorStats

__all__ = [
    "DEMO_ROOT",
    "CorpusError",
    "DemoArticle",
    "DemoCorpus",
    "DemoOutlet",
    "OutletSimulator",
    "SimulatorStats",
    "load_corpus",
]
