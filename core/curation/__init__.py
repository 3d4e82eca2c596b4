"""The user's own named groups: the curation model, its file, and the classifier into its groups."""
