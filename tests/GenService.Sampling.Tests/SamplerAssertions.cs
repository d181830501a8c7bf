using GenService.Sampling.Diffusion;

namespace GenService.Sampling.Tests;

internal static class SamplerAssertions
{
    /// <summary>
    /// A model that returns the true noise of x_t = sqrt(acp) x0 + sqrt(1 - acp) eps: every step predicts x0 (1e-3),
    /// and the last step lands on it (<paramref name="finalTolerance"/>).
    /// </summary>
    public static void PerfectNoiseModelLandsOnTheCleanSample(IDiffusionSampler sampler, double finalTolerance)
    {
        float[] x0 = [0.5f, -0.25f, 0.75f];
        float[] eps = [1.2f, -0.3f, 0.4f];
        var x = new float[3];
        sampler.AddNoise(x0, eps, 0, x);
        var state = sampler.CreateState(3);
        var predicted = new float[3];
        for (var s = 0; s < sampler.Timesteps.Count; s++)
        {
            sampler.Step(state, eps, s, x, default, predicted);
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(x0[i], predicted[i], 1e-3);
            }
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(x0[i], x[i], finalTolerance);
        }
    }
}
