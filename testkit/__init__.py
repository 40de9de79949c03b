"""Support for the tests and the benchmarks: real worker processes, private Kafka and MongoDB servers, audits of
what Kafka acknowledged against what MongoDB holds. Neither the worker nor the dashboard imports it."""
