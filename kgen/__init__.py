"""kgen: Keras 3 generative models of handwritten digits."""

__version__ = "0.1.0"
