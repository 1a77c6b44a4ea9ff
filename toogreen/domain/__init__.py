"""Pure domain logic: no Kafka, Faust or database imports here, so the agents, the API and the offline
evaluation all call the same functions."""
