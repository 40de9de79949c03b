"""cryptoapp: a Faust stream processor that collects cryptocurrency prices into Kafka and MongoDB."""

__version__ = "0.1.0"
