"""k-nearest-neighbour distance to the training windows: the ``knn`` model kind."""
