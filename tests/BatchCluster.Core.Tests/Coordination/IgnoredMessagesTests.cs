using BatchCluster.Core.Coordination;

namespace BatchCluster.Core.Tests.Coordination;

/// <summary>A flood of ignored messages costs a line per sender per window and bounded memory.</summary>
public class IgnoredMessagesTests
{
    [Fact]
    public void A_flood_from_one_sender_makes_one_line_per_window_with_the_count_it_stood_for()
    {
        var ignored = new IgnoredMessages(windowMs: 60_000);
        int lines = 0;
        long reported = 0;
        for (int i = 0; i < 200_000; i++)
        {
            double now = i * 0.5; // 200,000 messages in 100 s
            if (ignored.Ignore("akka.tcp://attacker@10.0.0.9:1234/user/x", now, out long suppressed, out _))
            {
                lines++;
                reported += suppressed + 1;
            }
        }
        Assert.Equal(2, lines); // at 0 s and at 60 s
        Assert.Equal(200_000, ignored.Total);
        Assert.True(reported <= 200_000 && reported > 100_000, $"{reported}"); // the second line counts the first window's rest
    }

    [Fact]
    public void Many_senders_are_remembered_up_to_a_bound_and_the_rest_count_as_one()
    {
        var ignored = new IgnoredMessages(windowMs: 60_000);
        int lines = 0;
        for (int i = 0; i < 100_000; i++)
            if (ignored.Ignore($"sender-{i}", nowMs: i * 0.01, out _, out string loggedAs))
            {
                lines++;
                Assert.True(i < IgnoredMessages.MaxSenders || loggedAs == IgnoredMessages.OtherSenders);
            }
        Assert.Equal(IgnoredMessages.MaxSenders + 1, lines);
        Assert.Equal(IgnoredMessages.MaxSenders + 1, ignored.SendersRemembered);
        // Once a window has passed, quiet senders are forgotten and new ones are named again.
        Assert.True(ignored.Ignore("late-sender", nowMs: 200_000, out _, out string named));
        Assert.Equal("late-sender", named);
    }
}
