"""CatalogService: titles, genres, search, ratings and reviews."""
