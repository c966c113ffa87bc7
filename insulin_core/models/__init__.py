"""Models: the network, its training, the dose rule, the predictor contract, intervals, baselines."""
