"""Detection evaluation: a labelled corpus generated from the demo corpus (`corpus`), the
clustering scores against its truth (`scores`), and article rows to store it (`rows`). Tests
and benches import it as a package."""
