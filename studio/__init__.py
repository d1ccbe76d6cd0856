"""The foundation: where audio is made, and the plumbing every other folder shares.

- ``studio.synth``: the exact, fast offline FluidSynth renderer and soundfont resolution (notes -> waveform).
- ``studio.files``: atomic writers (WAV, MIDI, JSON, bytes, folders) so an interrupted job never leaves half a file.
- ``studio.flags``: one hyper-parameter dataclass -> a command line with ``--help`` (CleanRL style).
- ``studio.device``: ``--device auto`` resolution.
- ``studio.theory``: symbolic-music statistics (in-key, leaps, repeats, diversity) used by the prior, the
  monitor, the listeners' checks and evaluation.
- ``studio.listen``: listening copies for people (44.1 kHz re-render, -16 LUFS, true peak <= -1 dBFS); never scored.
- ``studio.progress``: progress bars, live on a terminal and a line per 10 % or 30 s in a log.

It imports no other folder of the project; ``envs/``, ``rater/``, ``agents/`` and ``evaluation/`` stand on it.
"""

SAMPLE_RATE = 16_000  # Hz: what PianoEnv renders and the rater hears (a person hears a separate 44.1 kHz render)
