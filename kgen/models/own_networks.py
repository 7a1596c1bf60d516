"""Your own sub-networks in a kgen model: their checks, and their place in `model.keras`."""

import keras

from kgen.nets import IMAGE_SHAPE


def check_given(first_name, first, second_name, second):
    """Raises `ValueError` unless both networks of a pair are given."""
    if first is None or second is None:
        missing = first_name if first is None else second_name
        raise ValueError(
            f"Pass both {first_name}= and {second_name}= (your own pair), or neither (kgen's). Received: {missing}=None"
        )


def check_pair(first_name, first, second_name, second):
    """Raises `ValueError` unless both networks of a pair are given and built."""
    check_given(first_name, first, second_name, second)
    for name, network in ((first_name, first), (second_name, second)):
        if not isinstance(network, keras.Model) or not network.built:
            raise ValueError(
                f"{name} must be a built keras.Model (a Sequential or functional model with keras.Input). "
                f"Received: {name}={network!r}"
            )


def check_autoencoder(encoder, decoder, image_shape, latent_dim, codes=1):
    """Checks your own encoder and decoder of an autoencoder or VAE; returns the image shape.

    The encoder takes images `image_shape` (default: its input shape) to
    `codes * latent_dim` values (2: the VAE's mean and log-variance), the
    decoder `latent_dim` values to images `image_shape`.
    """
    check_pair("encoder", encoder, "decoder", decoder)
    image_shape = check_image_shape(image_shape, encoder.input_shape[1:], "encoder")
    meaning = "latent_dim" if codes == 1 else f"{codes} * latent_dim"
    check_shape("encoder output", encoder.output_shape[1:], (codes * latent_dim,), meaning)
    check_shape("decoder input", decoder.input_shape[1:], (latent_dim,), "latent_dim")
    check_shape("decoder output", decoder.output_shape[1:], image_shape, "image_shape")
    return image_shape


def check_recurrent(recurrent, head, steps, features, outputs):
    """Checks your own recurrent stack and head (of the PatchLSTM); returns (number of layers, last layer's units).

    `recurrent` must be a non-empty list of Keras RNN layers (built or not),
    each with `return_sequences=True` and `return_state=True`, the first
    taking `features` per step; `head` a Keras layer or model from the last
    layer's units to `outputs` logits.
    """
    if not isinstance(recurrent, (list, tuple)) or not recurrent:
        raise ValueError(f"recurrent must be a list of Keras RNN layers. Received: recurrent={recurrent!r}")
    dim = features
    for i, layer in enumerate(recurrent):
        if not isinstance(layer, keras.layers.RNN) or not (layer.return_sequences and layer.return_state):
            raise ValueError(
                "Each layer of recurrent must be a Keras RNN layer (LSTM, GRU, SimpleRNN, RNN) made with "
                f"return_sequences=True and return_state=True. Received: recurrent[{i}]={layer!r}"
            )
        dim = layer.compute_output_shape((None, steps, dim))[0][-1]
    if not isinstance(head, keras.layers.Layer):
        raise ValueError(f"head must be a Keras layer or model. Received: head={head!r}")
    if not head.built:
        head.build((None, dim))
    check_shape("head output", head.compute_output_shape((None, dim))[1:], (outputs,), "the pixels of a patch")
    return len(recurrent), dim


def check_shape(what, shape, expected, meaning):
    """Raises `ValueError` when a network's `shape` (no batch axis) is not `expected`."""
    shape, expected = tuple(shape), tuple(expected)
    if shape != expected:
        raise ValueError(f"The {what} must have shape {expected} ({meaning}). Received: shape={shape}")


def check_image_shape(image_shape, network_shape, network_name):
    """The image shape of your own networks: `image_shape` if given (it must match theirs), else theirs."""
    network_shape = tuple(network_shape)
    if image_shape is None:
        image_shape = network_shape
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels). Received: image_shape={image_shape}")
    check_shape(f"{network_name}'s images", network_shape, image_shape, "image_shape")
    return image_shape


def check_default_shape(image_shape, options):
    """kgen's own networks take (28, 28, 1) images: raises for another `image_shape`."""
    if image_shape is not None and tuple(image_shape) != IMAGE_SHAPE:
        raise ValueError(
            f"kgen's own networks take {IMAGE_SHAPE} images; for other shapes pass your own networks "
            f"({options}). Received: image_shape={tuple(image_shape)}"
        )
    return IMAGE_SHAPE


def serialize_networks(model, names):
    """`{name: config}` of a model's own sub-networks (none when it uses kgen's), for `get_config`."""
    if not model.custom_networks:
        return {}
    return {name: keras.saving.serialize_keras_object(getattr(model, name)) for name in names}


def deserialize_networks(config, names):
    """`config` with the serialized sub-networks `names` turned back into networks, for `from_config`."""
    config = dict(config)
    for name in names:
        if config.get(name) is not None:
            config[name] = keras.saving.deserialize_keras_object(config[name])
    return config


class OwnNetworks:
    """Mixin of kgen's models: your own sub-networks, named in `network_names`, travel in `model.keras`.

    `get_config` adds them with `serialize_networks(self, self.network_names)`
    (nothing when the model uses kgen's networks); `from_config` turns them
    back into networks before calling the constructor.
    """

    network_names = ()  # the constructor arguments that take your own networks

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_networks(config, cls.network_names))
