"""Research feature extraction: calcimg's measurements as tables to model on."""
