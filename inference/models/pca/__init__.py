"""PCA with Hotelling T² and SPE limits: the ``pca`` model kind."""
