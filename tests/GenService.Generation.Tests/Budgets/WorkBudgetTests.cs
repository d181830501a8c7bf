using System.ComponentModel.DataAnnotations;
using GenService.Generation.Budgets;
using GenService.Inference;
using GenService.Inference.Callers;
using Microsoft.Extensions.Options;

namespace GenService.Generation.Tests.Budgets;

/// <summary>The per-request check, the per-caller in-flight accounting and the work each family asks for.</summary>
public sealed class WorkBudgetTests
{
    private static WorkBudget Budget(long perRequest, long perCaller) =>
        new(Options.Create(new WorkBudgetOptions { MaxRequestWork = perRequest, MaxCallerWork = perCaller }));

    private static WorkRequest Work(long units) => new("m", units, $"{units} units", "'count'", "count");

    [Fact]
    public void Work_is_counted_per_family_as_documented()
    {
        Assert.Equal(4L * 50 * 512 * 512, WorkRequest.Diffusion("sd", 4, 50, [3, 512, 512], sized: true).Units);
        Assert.Equal(2L * 20 * 64, WorkRequest.Diffusion("ddpm", 2, 20, [1, 8, 8], sized: false).Units);
        Assert.Equal(3L * (5 + 12), WorkRequest.Ar("words", 3, 5, 12).Units);
        Assert.Equal(17L, WorkRequest.Scored("words", 3, 17).Units);
        Assert.Equal(8L * 64, WorkRequest.OneShot("gan", 8, [1, 8, 8], "count").Units);
        Assert.Equal(8L * 2, WorkRequest.OneShot("fake", 8, [2], "count").Units);
        Assert.Equal("count 4 x steps 50 x 262144 pixels", WorkRequest.Diffusion("sd", 4, 50, [3, 512, 512], sized: true).Product);
    }

    [Fact]
    public void A_request_over_the_per_request_budget_is_a_400_that_says_what_to_lower()
    {
        WorkBudget budget = Budget(100, 1000);
        budget.Check(Work(100));
        RequestValidationException e = Assert.Throws<RequestValidationException>(() => budget.Admit(WorkRequest.Diffusion("d", 2, 10, [1, 8, 8], sized: false)));
        Assert.Equal("count", e.Field);
        Assert.Equal("The request asks for count 2 x steps 10 x 64 pixels = 1280 units of work; the budget per request is 100 (GenService:Limits:MaxRequestWork). Lower 'count' or 'steps'.", e.Message);
        Assert.Equal(0, budget.InFlight(CallerContext.Current));
    }

    [Fact]
    public void A_caller_holds_its_work_until_the_lease_is_disposed_and_callers_are_apart()
    {
        WorkBudget budget = Budget(60, 100);
        using (CallerContext.Enter("key:heavy"))
        {
            WorkBudget.Lease first = budget.Admit(Work(60));
            WorkBudget.Lease second = budget.Admit(Work(40));
            Assert.Equal(100, budget.InFlight("key:heavy"));
            WorkBudgetExceededException e = Assert.Throws<WorkBudgetExceededException>(() => budget.Admit(Work(1)));
            Assert.Equal(TimeSpan.FromSeconds(1), e.RetryAfter);
            Assert.Contains("'key:heavy' has 100 units of work in flight and asked for 1 more", e.Message, StringComparison.Ordinal);

            using (CallerContext.Enter("key:light"))
            {
                using WorkBudget.Lease light = budget.Admit(Work(60));
                Assert.Equal(60, budget.InFlight("key:light"));
            }

            first.Dispose();
            first.Dispose(); // once only
            Assert.Equal(40, budget.InFlight("key:heavy"));
            using WorkBudget.Lease again = budget.Admit(Work(60));
            second.Dispose();
            Assert.Equal(60, budget.InFlight("key:heavy"));
        }

        Assert.Equal(0, budget.InFlight("key:light"));
    }

    [Fact]
    public void Zero_turns_each_budget_off()
    {
        WorkBudget budget = Budget(0, 0);
        using WorkBudget.Lease a = budget.Admit(Work(long.MaxValue / 4));
        using WorkBudget.Lease b = budget.Admit(Work(long.MaxValue / 4));
        Assert.Equal(0, budget.InFlight(CallerContext.Current));
    }

    [Fact]
    public void The_caller_budget_must_hold_the_largest_request()
    {
        var options = new WorkBudgetOptions { MaxRequestWork = 100, MaxCallerWork = 50 };
        var results = new List<ValidationResult>();
        Assert.False(Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true));
        Assert.Contains("MaxCallerWork (50) must be at least MaxRequestWork (100)", Assert.Single(results).ErrorMessage, StringComparison.Ordinal);
    }
}
