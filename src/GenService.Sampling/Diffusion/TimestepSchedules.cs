namespace GenService.Sampling.Diffusion;

/// <summary>
/// Inference timesteps per spacing, copied from each diffusers scheduler's <c>set_timesteps</c> with numpy's
/// arithmetic (linspace, arange, round-half-to-even), because the schedulers disagree with each other.
/// All lists run from the noisiest timestep down.
/// </summary>
internal static class TimestepSchedules
{
    /// <summary>DDPMScheduler and DDIMScheduler.</summary>
    public static double[] Ddim(int trainSteps, int steps, TimestepSpacing spacing, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                // np.linspace(0, T - 1, N).round()[::-1]
                return ReverseRound(Linspace(0, trainSteps - 1, steps));
            case TimestepSpacing.Leading:
                // (np.arange(0, N) * (T // N)).round()[::-1] + steps_offset
                return Leading(steps, trainSteps / steps, stepsOffset);
            default:
                // np.round(np.arange(T, 0, -T / N)) - 1
                return Trailing(trainSteps, steps);
        }
    }

    /// <summary>DPMSolverMultistepScheduler: N + 1 points with the last dropped, so it never lands on t = 0.</summary>
    public static double[] DpmSolver(int trainSteps, int steps, TimestepSpacing spacing, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                // np.linspace(0, T - 1, N + 1).round()[::-1][:-1]
                return ReverseRound(Linspace(0, trainSteps - 1, steps + 1))[..steps];
            case TimestepSpacing.Leading:
                // (np.arange(0, N + 1) * (T // (N + 1))).round()[::-1][:-1] + steps_offset
                return Leading(steps + 1, trainSteps / (steps + 1), stepsOffset)[..steps];
            default:
                return Trailing(trainSteps, steps);
        }
    }

    /// <summary>EulerDiscreteScheduler / EulerAncestralDiscreteScheduler: linspace keeps fractional timesteps.</summary>
    public static double[] Euler(int trainSteps, int steps, TimestepSpacing spacing, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                // np.linspace(0, T - 1, N)[::-1], not rounded: the sigmas are interpolated at these points.
                var points = Linspace(0, trainSteps - 1, steps);
                Array.Reverse(points);
                return points;
            case TimestepSpacing.Leading:
                return Leading(steps, trainSteps / steps, stepsOffset);
            default:
                return Trailing(trainSteps, steps);
        }
    }

    private static double[] Linspace(double start, double stop, int n)
    {
        var points = new double[n];
        NoiseSchedule.Linspace(start, stop, points);
        return points;
    }

    private static double[] ReverseRound(double[] points)
    {
        for (var i = 0; i < points.Length; i++)
        {
            points[i] = Math.Round(points[i], MidpointRounding.ToEven);
        }

        Array.Reverse(points);
        return points;
    }

    private static double[] Leading(int count, int ratio, int offset)
    {
        var points = new double[count];
        for (var i = 0; i < count; i++)
        {
            points[count - 1 - i] = ((double)i * ratio) + offset;
        }

        return points;
    }

    private static double[] Trailing(int trainSteps, int steps)
    {
        // np.arange(T, 0, -ratio): length ceil((0 - T) / -ratio), values T + i * delta where numpy re-derives
        // delta as (T - ratio) - T; then round half to even and subtract 1.
        var ratio = (double)trainSteps / steps;
        var length = (int)Math.Ceiling((0.0 - trainSteps) / -ratio);
        var delta = (trainSteps - ratio) - trainSteps;
        var points = new double[length];
        for (var i = 0; i < length; i++)
        {
            var value = i == 0 ? trainSteps : trainSteps + (i * delta);
            points[i] = Math.Round(value, MidpointRounding.ToEven) - 1;
        }

        return points;
    }
}
