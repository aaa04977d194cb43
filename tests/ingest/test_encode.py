"""tf.Example bytes written by hand: ``CachedEncoder`` gives exactly ``encode_features``'s bytes."""

import random

import tensorflow as tf

from twotower.ingest import encode


def test_cached_encoder_writes_the_bytes_of_encode_features_for_repeated_and_fresh_values():
    rng = random.Random(5)
    values = {
        "t_dat": lambda: rng.choice([0, -86_400, 1_600_000_000, 2**40]),
        "price": lambda: rng.choice([0.0, -0.0, 0.5, 1e-9, 0.0135, 3.4e38, -2.5]),
        "article_id": lambda: rng.choice(["0108775015", "", "ü" * 70, "x" * 200, "1"]),
        "vector": lambda: tuple(rng.random() for _ in range(rng.randint(0, 3))),
        "tokens": lambda: ["a", "bc"][: rng.randint(0, 2)],
        "flag": lambda: rng.choice([True, False, 1, 1.0]),
    }
    for limit in (100_000, 2):
        cached = encode.CachedEncoder(("t_dat",), limit=limit)
        for _ in range(2_000):
            names = [n for n in values if rng.random() < 0.7]
            record = {name: values[name]() for name in names}
            assert cached(record) == encode.encode_features(record, ("t_dat",)), record


def test_negative_zero_keeps_its_sign_after_positive_zero_was_seen():
    cached = encode.CachedEncoder()
    cached({"price": 0.0})
    example = tf.train.Example.FromString(encode.wrap_example(cached({"price": -0.0})))
    assert str(example.features.feature["price"].float_list.value[0]) == "-0.0"
