"""What an image becomes: features, PCA and neighbours, UMAP layouts, typical shapes."""
