"""adspark: batch anomaly scoring for Apache Spark.

Kept import-light on purpose: executors import this package to unpickle the
scoring UDF, and they have neither TensorFlow nor pydantic installed.
"""

__version__ = "0.1.0"
