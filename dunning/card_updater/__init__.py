"""The card account updater: ask the processor for a card's current details before
retrying a stale card (docs/architecture.md, README "Card account updater")."""
