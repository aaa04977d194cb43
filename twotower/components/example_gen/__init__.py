"""JoinExampleGen: the three CSVs of a profile joined into time-split tf.Examples."""
