/**
 * A shared screen is text and lines: under congestion drop frames, never resolution. The track
 * hint tells the encoder; the sender's degradation preference tells the bandwidth adaptation
 * (where the browser supports setting it; older ones keep their default). Used for the SFU
 * producer and for the direct link's sender alike.
 */
export async function keepResolution(sender: RTCRtpSender | undefined, track: MediaStreamTrack): Promise<void> {
  if ('contentHint' in track) (track as MediaStreamTrack & { contentHint: string }).contentHint = 'detail';
  if (!sender) return;
  try {
    const parameters = sender.getParameters() as RTCRtpSendParameters & { degradationPreference?: string };
    if (parameters.degradationPreference === 'maintain-resolution') return;
    parameters.degradationPreference = 'maintain-resolution';
    await sender.setParameters(parameters);
  } catch {
    // Not supported here: the content hint alone still favours detail.
  }
}
