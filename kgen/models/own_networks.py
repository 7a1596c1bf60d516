"""Your own sub-networks in a kgen model: their checks, and their place in `model.keras`."""

import keras

from kgen.nets import IMAGE_SHAPE


def check_pair(first_name, first, second_name, second):
    """Raises `ValueError` unless both networks of a pair are given and built."""
    if first is None or second is None:
        missing = first_name if first is None else second_name
        raise ValueError(
            f"Pass both {first_name}= and {second_name}= (your own pair), or neither (kgen's). Received: {missing}=None"
        )
    for name, network in ((first_name, first), (second_name, second)):
        if not isinstance(network, keras.Model) or not network.built:
            raise ValueError(
                f"{name} must be a built keras.Model (a Sequential or functional model with keras.Input). "
                f"Received: {name}={network!r}"
            )


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
