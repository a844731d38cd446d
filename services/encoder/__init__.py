"""EncodingService: master files become H.264/AAC ladders in 4-second CMAF segments."""
