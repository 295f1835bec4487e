"""Training pipelines: prepare a corpus, train each SV2TTS stage, use what was trained.

    deepfake-studio prepare SRC --out DATA                 # audio, mels, d-vectors, splits
    deepfake-studio train encoder     --data DATA --out RUN
    deepfake-studio train synthesizer --data DATA --out RUN --model tacotron|transformer
    deepfake-studio train vocoder     --data DATA --out RUN --model wavernn|hifigan
    deepfake-studio clone --engine sv2tts --models-dir RUN ...        (tacotron + wavernn)
    deepfake-studio clone --engine transformer --models-dir RUN ...   (transformer + hifigan)

A prepared data folder (`prepare.py` writes it, `dataset.py` reads it):

    DATA/prepare.json         PrepareConfig, mel format (AudioConfig), counts, split speakers
    DATA/train.csv val.csv test.csv   id, speaker, text, emotion, n_samples, n_frames
    DATA/skipped.csv          source, reason (every input file that was not used, and why)
    DATA/audio/ID.npy         float32 mono waveform at the prepared sample rate
    DATA/mels/ID.npy          float32 (n_mels, n_frames) mel in the prepared AudioConfig's format
    DATA/embeds/ID.npy        float32 (256,) unit-norm GE2E d-vector of the utterance

A run folder (each trainer writes its stage into the same RUN):

    RUN/encoder.pt synthesizer.pt vocoder.pt      RTVC layout: model_state, optimizer_state, step
    RUN/transformer.pt hifigan.pt                 the same layout, plus the model config
    RUN/checkpoints/STAGE-stepNNNNNNN.pt          every --checkpoint-every steps
    RUN/logs/STAGE/                               TensorBoard events + history.csv of the losses
"""
