"""Measuring generative models: the shipped evaluator and the metrics."""

from kgen.evaluation.evaluator import Evaluator, build_network, load_evaluator
